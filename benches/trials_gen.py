"""Big Optuna studies for benches/trials.sh, written by the real Optuna 5.0.

  python trials_gen.py make STORAGE N      N finished trials, 5 params, 20 intermediate values each
  python trials_gen.py add STORAGE K       K more finished trials (a poll then finds K new ones)
  python trials_gen.py load STORAGE        seconds for load_study + trials_dataframe(), best of 3

STORAGE is a sqlite:/// URL or a journal file path.
"""

import datetime
import random
import sys
import time

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

optuna.logging.set_verbosity(optuna.logging.ERROR)

DISTS = {
    "lr": FloatDistribution(1e-5, 1e-1, log=True),
    "dropout": FloatDistribution(0.0, 0.5, step=0.05),
    "layers": IntDistribution(1, 8),
    "width": IntDistribution(16, 512, step=16),
    "opt": CategoricalDistribution(["adam", "sgd", "adamw"]),
}


def storage_of(spec):
    if spec.startswith("sqlite:"):
        return spec
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(spec))


def trials(n, rng, t0):
    out = []
    for i in range(n):
        params = {
            "lr": 10 ** rng.uniform(-5, -1),
            "dropout": rng.randrange(11) * 0.05,
            "layers": rng.randint(1, 8),
            "width": 16 * rng.randint(1, 32),
            "opt": rng.choice(["adam", "sgd", "adamw"]),
        }
        base = rng.random()
        inter = {s: base + 1.0 / (s + 1) for s in range(20)}
        start = t0 + datetime.timedelta(seconds=i)
        out.append(
            optuna.trial.create_trial(
                params=params,
                distributions=DISTS,
                value=inter[19],
                intermediate_values=inter,
                user_attrs={"seed": i % 5},
                state=optuna.trial.TrialState.COMPLETE,
            )
        )
        out[-1].datetime_start = start
        out[-1].datetime_complete = start + datetime.timedelta(seconds=30)
    return out


def main():
    cmd, spec = sys.argv[1], sys.argv[2]
    storage = storage_of(spec)
    if cmd == "make":
        n = int(sys.argv[3])
        study = optuna.create_study(study_name="bench", storage=storage)
        rng = random.Random(1)
        t0 = datetime.datetime(2026, 1, 1)
        for lo in range(0, n, 1000):
            study.add_trials(trials(min(1000, n - lo), rng, t0))
    elif cmd == "add":
        study = optuna.load_study(study_name="bench", storage=storage)
        study.add_trials(trials(int(sys.argv[3]), random.Random(time.time()), datetime.datetime(2026, 2, 1)))
    elif cmd == "load":
        best = None
        for _ in range(3):
            t = time.perf_counter()
            study = optuna.load_study(study_name="bench", storage=storage_of(spec))
            df = study.trials_dataframe()
            took = time.perf_counter() - t
            assert len(df) > 0
            best = took if best is None else min(best, took)
        print(f"{best:.3f}")


if __name__ == "__main__":
    main()
