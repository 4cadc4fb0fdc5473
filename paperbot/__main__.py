import sys

from paperbot.bot import main

sys.exit(main())
