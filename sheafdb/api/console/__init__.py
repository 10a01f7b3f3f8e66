"""The web console (server-rendered pages with htmx), served on the API port."""
