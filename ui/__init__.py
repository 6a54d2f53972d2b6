"""The Gradio app (inpaint, edit, model tabs). Not built yet: `make app` runs `inpaint demo` meanwhile."""
