"""Orders CDC consumer: turns Debezium change events of the `orders` table into fulfilment events."""
