"""A tiny flow-matching policy that runs LeRobot's RTC guidance the way pi0, pi05 and SmolVLA do.

Those families cannot be built here (their backbones come from the hub), so this stands in for
them: a real torch model sampled by LeRobot's own `euler_integrate` (the loop pi0, pi05 and SmolVLA
run), whose RTC hook calls `RTCProcessor.denoise_step` with the `inference_delay` and
`prev_chunk_left_over` it is given. Laid out as LeRobot's plugin policies
are (`configuration_*` / `modeling_*`), so LeRobot's factory finds it by type name.
"""

from tests.lerobot.rtc_probe.configuration_rtc_probe import RtcProbeConfig
from tests.lerobot.rtc_probe.modeling_rtc_probe import RtcProbePolicy

__all__ = ["RtcProbeConfig", "RtcProbePolicy"]
