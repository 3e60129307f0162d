"""Applications built on the framework: `fer`, facial expressions in images, video and a
camera (OpenCV). Reached as `tm.fer`; nothing here is imported by `import tinygrad_mlp`."""
