"""Trust: calibrated confidence, prediction sets with a coverage guarantee, and abstention.

`calibration` fits a temperature and measures calibration (ECE, NLL, Brier); `conformal` turns
calibrated probabilities into label sets that hold the truth at a chosen rate; `profile` is what a
user fits once on labelled examples and hands to a classifier (`sensorium calibrate`); `diagram`
draws reliability diagrams. Plain numpy and scipy: usable at query time.
"""
