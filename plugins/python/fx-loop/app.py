"""Adversarial fixture: a policy that never answers. The host must stop it (out of fuel) and
deny."""

from wit_world import exports


class Evaluator(exports.Evaluator):
    def evaluate(self, request):
        n = 0
        while True:
            n += 1

    def validate_config(self, config: str) -> None:
        return None
