import sys

from siameseim_tf.cli import main

sys.exit(main())
