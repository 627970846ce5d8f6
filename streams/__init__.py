"""streams: ICU waveforms from Kafka into per-patient windows, scored in batches, risk scores back to Kafka.

Public surface:
    schemas   WaveformChunk, AlarmEvent, RiskScore, encode_/decode_ functions (strict validation)
    broker    KafkaSettings, EmbeddedBroker (Tansu), ensure_topics, topic names
    replay    build_streams, replay (records -> live patient streams)
    windows   WindowConfig, Windower (ring buffers, sliding windows, alarms, safe commit offsets)
    scorer    WindowBatch, ScoreOut, Scorer, MemberScorer, register_scorer / make_scorer / available_scorers
    consumer  ConsumerConfig, StreamConsumer
    metrics   StreamMetrics
"""

from .broker import ALARMS, DEADLETTER, RISK, WAVEFORMS, EmbeddedBroker, KafkaSettings, Topics, ensure_topics
from .consumer import ConsumerConfig, StreamConsumer
from .metrics import StreamMetrics
from .replay import PatientStream, ReplayStats, build_streams, replay
from .schemas import (AlarmEvent, RiskScore, WaveformChunk, decode_alarm, decode_chunk, decode_risk, encode_alarm,
                      encode_chunk, encode_risk)
from .scorer import MemberScorer, Scorer, ScoreOut, WindowBatch, available_scorers, make_scorer, register_scorer
from .windows import LostWindow, WindowConfig, Windower, WindowItem

__all__ = [
    "ALARMS", "DEADLETTER", "RISK", "WAVEFORMS", "EmbeddedBroker", "KafkaSettings", "Topics", "ensure_topics",
    "ConsumerConfig", "StreamConsumer", "StreamMetrics", "PatientStream", "ReplayStats", "build_streams", "replay",
    "AlarmEvent", "RiskScore", "WaveformChunk", "decode_alarm", "decode_chunk", "decode_risk", "encode_alarm",
    "encode_chunk", "encode_risk", "MemberScorer", "Scorer", "ScoreOut", "WindowBatch", "available_scorers",
    "make_scorer", "register_scorer", "LostWindow", "WindowConfig", "Windower", "WindowItem",
]
