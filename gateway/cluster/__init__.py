"""The optional NATS JetStream link between gateways: event stream, remote calls, account
directory (see each module)."""
