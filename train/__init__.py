"""absl-flag training entry points: preprocess, B-Net, FAN, DRN."""
