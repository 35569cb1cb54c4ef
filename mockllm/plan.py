"""
Where scenarios written for mockllm 0.1 import plan parts from; new code imports them from
:mod:`mockllm.scenario`.
"""

from mockllm.scenario import NO_FAULT, ChunkFault, Fault, NoFault, Plan, PlanPart, StatusFault, StreamTiming, TimeoutFault

__all__ = ["NO_FAULT", "ChunkFault", "Fault", "NoFault", "Plan", "PlanPart", "StatusFault", "StreamTiming", "TimeoutFault"]
