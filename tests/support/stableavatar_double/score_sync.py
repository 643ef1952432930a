"""Not StableAvatar's: a stand-in for a user's lip-sync scorer (a SyncNet script) appended to
the inference command, printing one JSON line of metrics as lorad reads them. Its numbers come
from the video's length so two outputs of different audio score differently."""

import json
import subprocess
import sys

seconds = float(subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration",
                                "-of", "csv=p=0", sys.argv[1]], capture_output=True, text=True,
                               check=True).stdout.strip())
print("scoring lip sync...")
print(json.dumps({"sync_confidence": round(5 + seconds, 3), "sync_distance": round(9 - seconds, 3)}))
