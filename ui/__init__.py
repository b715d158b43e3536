"""Front ends: the `inr` command line and the Gradio app."""
