"""The faithfulness check: does a restoration still show the same picture and the same people?

Owns the alignment of a result to the image the model was given (scale and offset), their
structure similarity, the face comparison (dlib embeddings) and the verdict. It calls numpy,
Pillow and dlib only, each imported where it is used, so importing this package costs nothing.
"""
