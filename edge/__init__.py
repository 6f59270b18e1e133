"""The edge: signal pipeline, detectors, recording/replay, MQTT publishing and its spool."""
