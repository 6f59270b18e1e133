"""The collector: MQTT to InfluxDB, validated, batched, acknowledged only once stored."""
