#!/usr/bin/python3
"""test/smarthost.py with one more option, for faults in the middle of a
long session:

  --fault-from N   each --fault STAGE:ACTION[:COUNT] fires only from the
                   Nth time its stage is reached (counted over all
                   connections), e.g. --fault mail:drop:1 --fault-from 500
                   drops the session at the 500th MAIL.

Everything else (options, files in --outdir) is smarthost.py's; it is
imported, not copied.  Start it from a test with lib.sh's
_t_start smarthost NAME smarthost_nth.py ARGS...
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import smarthost  # noqa: E402


def main():
    argv = sys.argv[1:]
    start = 1
    if "--fault-from" in argv:
        i = argv.index("--fault-from")
        try:
            start = int(argv[i + 1])
        except (IndexError, ValueError):
            sys.exit("smarthost_nth.py: --fault-from needs a number")
        del argv[i:i + 2]
    take = smarthost.Faults.take
    seen = {}

    def take_from(self, stage):
        if stage in self.faults:
            seen[stage] = seen.get(stage, 0) + 1
            if seen[stage] < start:
                return None
        return take(self, stage)

    smarthost.Faults.take = take_from
    sys.argv[1:] = argv
    return smarthost.main()


if __name__ == "__main__":
    sys.exit(main())
