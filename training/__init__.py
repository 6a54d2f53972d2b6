"""The DCGAN trainer behind `inpaint train`: data preparation, the training loop, run directories."""
