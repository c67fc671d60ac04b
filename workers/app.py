"""The Celery app. Broker: Redis when `REDIS_URL` is set, else the embedded PostgreSQL.

Run: `celery -A workers.app worker --pool solo` (what `asifdb up` starts). The solo pool keeps
the encoders (and CUDA) in the worker's own process: nothing is forked after they load.
"""

from celery import Celery

from asifdb.broker import broker_url
from workers.runtime import platform

_broker = broker_url(redis_url=platform().settings.redis_url, database_url=platform().url)
app = Celery("asifdb", broker=_broker, include=["workers.tasks"])
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    task_ignore_result=True,
    task_default_queue="asifdb",
    worker_prefetch_multiplier=1,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    task_serializer="json",
    accept_content=["json"],
)

if _broker.startswith("redis"):
    # Redis hands an unacknowledged message to another worker after this long; batches take
    # seconds, and recovery from the job tables covers messages Redis itself loses.
    app.conf.broker_transport_options = {"visibility_timeout": 3600}
