import sys

from botwatch.up.standins.paperbot.bot import main

sys.exit(main())
