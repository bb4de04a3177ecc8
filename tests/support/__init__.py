"""Test helpers: free ports, private servers (mosquitto, influxd), leak checks."""
