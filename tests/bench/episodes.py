"""One closed-loop episode record as the driving benchmarks read it, for their pooling and pairing tests."""


def episode(crashed: bool, distance: float = 100.0) -> dict:
    return {"crashed": float(crashed), "distance": distance, "speed": 20.0, "return": 1.0, "offroad": 0.0}
