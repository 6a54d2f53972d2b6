"""Semantic image inpainting and latent editing with a DCGAN (Yeh et al., CVPR 2017)."""

__version__ = "0.1.0"
