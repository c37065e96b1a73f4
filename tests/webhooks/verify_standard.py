"""Verifies the webhook deliveries the black-box tests kept (WEBHOOK_SAMPLES_DIR) with
the `standardwebhooks` package from PyPI: an implementation of the Standard Webhooks
signature that is not ours. Fails when there is no sample or one does not verify."""

import json
import pathlib
import sys

from standardwebhooks.webhooks import Webhook

samples = sorted(pathlib.Path(sys.argv[1]).glob("*.json"))
if not samples:
    sys.exit("no webhook samples were kept: did the webhook tests run?")
for path in samples:
    sample = json.loads(path.read_text())
    Webhook(sample["secret"]).verify(sample["body"], sample["headers"])
print(f"standardwebhooks verified {len(samples)} deliveries")
