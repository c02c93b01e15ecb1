"""The medical-insurance interface (医保) as one model: the envelope, 95 transactions, code sets, admdvs.

`model` reads specs/medins/*.yaml; `checks` judges an envelope and a transaction's input or output
against it. The simulator (harness mock medins) and certification (harness certify) both read this.
"""
