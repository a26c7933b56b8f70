// Adversarial fixture: a policy that never answers. The host must stop it (out of fuel) and deny.
#include "policy.h"

void exports_uma_policy_evaluator_evaluate(exports_uma_policy_evaluator_request_t *request,
                                           exports_uma_policy_evaluator_decision_t *ret) {
  volatile unsigned long n = 0;
  for (;;) n++;
}

bool exports_uma_policy_evaluator_validate_config(policy_string_t *config, policy_string_t *err) {
  policy_string_free(config);
  return true;
}
