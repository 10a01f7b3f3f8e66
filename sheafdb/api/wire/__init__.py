"""gRPC over HTTP/2 served by one epoll loop thread per process (no grpcio server on this path)."""
