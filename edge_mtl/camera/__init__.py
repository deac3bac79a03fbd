"""The camera app: frame sources, overlay drawing and the timed camera loop."""
