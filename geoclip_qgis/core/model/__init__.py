"""The models: engine, CLIP towers, location encoder, weights, gallery, device and precision."""
