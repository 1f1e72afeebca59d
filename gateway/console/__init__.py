"""Static files of the web console (served by the admin listener)."""
