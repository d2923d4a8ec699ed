#!/usr/bin/python3
"""A consumer of payorch's payment events (the README's bus contract, "Outbound").

payorch publishes at least once: after a crash or a republish the same event may
come again, and events of one order may arrive out of order across redeliveries.
So this consumer
  - deduplicates by event_id;
  - orders each order's events by sequence (1, 2, 3, ... without gaps), holding an
    early one (unacked) until the ones before it arrived;
  - acks a message only once it is handed on, on a durable queue of its own, so
    that nothing is lost while it is down: what it held comes again.
Here `seen` and `next_seq` live in memory, so a restart starts every order at
sequence 1 again. A real service keeps both in its own database, written in the
same transaction as the effect of each event.
The body is protobuf: the classes are generated from proto/ at start (protoc).

    payment_consumer.py --url amqp://guest:guest@127.0.0.1:5672/ --queue billing.payments
"""
import argparse
import collections
import os
import subprocess
import sys
import tempfile

import pika

HERE = os.path.dirname(os.path.abspath(__file__))


def load_contract(proto_dir):
    """payorch/v1/payment_event.proto compiled for Python into a temporary directory."""
    out = tempfile.mkdtemp(prefix="payorch-proto-")
    files = [os.path.join(proto_dir, "payorch", "v1", f)
             for f in ("order_event.proto", "payment_event.proto")]
    subprocess.run(["protoc", f"--python_out={out}", f"-I{proto_dir}"] + files, check=True)
    sys.path.insert(0, out)
    from payorch.v1 import payment_event_pb2  # noqa: E402 (generated above)
    return payment_event_pb2


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/")
    ap.add_argument("--exchange", default="payorch.payments")
    ap.add_argument("--queue", default="example.payment-events")
    ap.add_argument("--proto", default=os.path.join(HERE, "..", "..", "proto"))
    ap.add_argument("--expect", type=int, default=0,
                    help="exit 0 after this many distinct events (0: run until stopped)")
    args = ap.parse_args()
    pb = load_contract(args.proto)

    connection = pika.BlockingConnection(pika.URLParameters(args.url))
    channel = connection.channel()
    # A durable queue of this service's own, bound to every payment event.
    channel.queue_declare(queue=args.queue, durable=True)
    channel.queue_bind(queue=args.queue, exchange=args.exchange, routing_key="payment.#")
    channel.basic_qos(prefetch_count=100)
    print(f"ready: consuming {args.queue}", flush=True)

    seen = set()                             # event_ids handled or held (dedup)
    next_seq = collections.defaultdict(lambda: 1)   # per order: the sequence due next
    held = collections.defaultdict(dict)     # per order: sequence -> (event, delivery tag)
    handled = 0

    def handle(event):
        kind = event.WhichOneof("kind")
        b = event.balance
        print(f"{event.order_id} #{event.sequence} {kind} "
              f"authorized={b.authorized} captured={b.captured}", flush=True)

    def on_message(ch, method, properties, body):
        nonlocal handled
        event = pb.PaymentEvent()
        event.ParseFromString(body)
        order = event.order_id
        if event.event_id in seen or event.sequence < next_seq[order]:
            ch.basic_ack(method.delivery_tag)  # a duplicate: already handled or held
            return
        seen.add(event.event_id)
        held[order][event.sequence] = (event, method.delivery_tag)
        # Hand on every event of the order that is now in sequence, acking each
        # after it was handled (an early one stays unacked while it waits).
        while next_seq[order] in held[order]:
            ready, tag = held[order].pop(next_seq[order])
            handle(ready)
            ch.basic_ack(tag)
            next_seq[order] += 1
            handled += 1
        if args.expect and handled >= args.expect:
            ch.stop_consuming()

    channel.basic_consume(queue=args.queue, on_message_callback=on_message)
    channel.start_consuming()
    connection.close()


if __name__ == "__main__":
    main()
