"""Find the products in a photo: boxes, masks, scores and coarse categories (see ARCHITECTURE)."""
