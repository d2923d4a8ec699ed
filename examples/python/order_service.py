#!/usr/bin/python3
"""An order service publishing order events to payorch (the README's bus contract, "Inbound").

For each order: a PurchaseRequested (with the payer's mobile number), then an
OrderShipped for the whole amount. Bodies are the contract's canonical JSON
mapping (content_type application/json); protobuf works the same way. Each
publish waits for the broker's confirm: an event the broker did not confirm
must be published again (same event_id; payorch handles each event_id once).

    order_service.py --url amqp://guest:guest@127.0.0.1:5672/ --orders 3
"""
import argparse
import datetime
import json

import pika


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/")
    ap.add_argument("--exchange", default="payorch.orders")
    ap.add_argument("--orders", type=int, default=3)
    ap.add_argument("--prefix", default="py-order-")
    ap.add_argument("--amount", type=int, default=15000, help="minor units (øre)")
    args = ap.parse_args()

    connection = pika.BlockingConnection(pika.URLParameters(args.url))
    channel = connection.channel()
    # Publisher confirms: basic_publish returns once the broker has the message
    # (persisted, for a durable queue) and raises if it refused it.
    channel.confirm_delivery()

    def publish(routing_key, event):
        channel.basic_publish(
            exchange=args.exchange,
            routing_key=routing_key,
            body=json.dumps(event).encode(),
            properties=pika.BasicProperties(
                content_type="application/json",
                message_id=event["eventId"],  # the contract: message_id = event_id
                type="payorch.v1.OrderEvent",
                delivery_mode=2,  # persistent
            ),
            mandatory=True,  # unroutable (no queue bound) is an error, not a silent drop
        )
        print(f"published {routing_key} {event['eventId']}", flush=True)

    now = datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")
    for i in range(args.orders):
        order = f"{args.prefix}{i}"
        # event_id: stable for the event, so that a retry after a lost confirm is
        # recognised by payorch as the same event.
        publish("order.purchase_requested", {
            "eventId": f"{order}:purchase", "orderId": order, "occurredAt": now,
            "purchaseRequested": {
                "amount": str(args.amount), "vatAmount": str(args.amount // 5),
                "currency": "NOK", "description": "Example order",
                "msisdn": "+4791234567"}})
        publish("order.shipped", {
            "eventId": f"{order}:ship-1", "orderId": order, "occurredAt": now,
            "shipped": {"shipmentId": "1", "amount": str(args.amount),
                        "vatAmount": str(args.amount // 5)}})
    connection.close()


if __name__ == "__main__":
    main()
