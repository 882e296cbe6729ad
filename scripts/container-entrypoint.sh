#!/bin/sh
# The image's entrypoint: one argument names the process to run (see the Dockerfile); anything else runs as given.
set -eu
process="${1:-gateway}"
config="${CONFIG:-config/prod.yml}"
case "$process" in
  gateway) set -- nameko run --config "$config" gateway.service:GatewayService ;;
  accounts) set -- nameko run --config "$config" services.accounts.service:AccountsService ;;
  products) set -- nameko run --config "$config" services.products.service:ProductsService ;;
  inventory) set -- nameko run --config "$config" services.inventory.service:InventoryService ;;
  orders) set -- nameko run --config "$config" services.orders.service:OrdersService ;;
  notifications) set -- nameko run --config "$config" services.notifications.service:NotificationsService ;;
  webhooks) set -- nameko run --config "$config" services.webhooks.service:WebhooksService ;;
  payments) set -- nameko run --config "$config" bridge.payments:PaymentsService ;;
  kafka_bridge|kafka-bridge) set -- nameko run --config "$config" bridge.kafka_relay:KafkaBridge ;;
  inventory_grpc|inventory-grpc) set -- python -m inventory_grpc.server --config "$config" ;;
  migrate) set -- python -m common.migrations --config "$config" ;;
  payment_provider|payment-provider)
    set -- python -m payment_provider.server --address "${PAYMENT_PROVIDER_LISTEN:-0.0.0.0:50051}" \
      --db "${PAYMENT_PROVIDER_DB:-/tmp/payment_provider.db}" ;;
esac
export SERVICE_NAME="${SERVICE_NAME:-$process}"
exec "$@"
