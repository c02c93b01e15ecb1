"""The interface inspection (接口巡检): what the capture store says about each interface over a window.

`scan` reads the rows, `inspection` computes the figures (sans-IO), `sla` judges them, `report` renders them,
`run` puts the steps together for `harness inspect` and `harness capture summary --html`.
"""
