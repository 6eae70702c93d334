"""The converted model directory: ``conversion.json`` and loading ``model.keras`` / the SavedModel."""
