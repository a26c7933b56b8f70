// Adversarial fixture: a policy that never answers. The host must stop it (out of fuel) and deny.
export const evaluator = {
  evaluate(request) {
    let n = 0;
    for (;;) n += 1;
  },
  validateConfig(config) {},
};
