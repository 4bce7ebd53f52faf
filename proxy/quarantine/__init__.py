"""Source quarantine: count detections per client key and per untrusted source; cool them down."""
