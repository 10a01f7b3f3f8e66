"""Cluster distribution: which worker holds which segments of which replica, and the calls
between the proxy and the query workers."""
