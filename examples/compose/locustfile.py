"""Load for the compose example: browse the demo service's API through chaosproxy."""

import random

from locust import FastHttpUser, between, task


class Shopper(FastHttpUser):
    wait_time = between(0.5, 1.5)

    @task(5)
    def list_items(self) -> None:
        self.client.get("/api/items")

    @task(3)
    def get_item(self) -> None:
        self.client.get(f"/api/items/{random.randint(1, 20)}", name="/api/items/{id}")

    @task(1)
    def static(self) -> None:
        self.client.get("/static/app.js")
