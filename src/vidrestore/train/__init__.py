"""Training loops (L4). Submodules are imported on demand: ``vidrestore.train.prior`` trains the bundled image prior."""
