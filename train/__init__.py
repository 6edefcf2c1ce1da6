"""Training package (CoCon and TCLR); it reads stores through `preprocess.store.Store`."""
