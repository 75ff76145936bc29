"""Prometheus series of the TCP proxies, read at scrape time from their counts (a connection
pays nothing for them): connections accepted, open, refused by a fault, failed to reach the
upstream, and bytes each way, per proxy. Faults that acted on connections are counted with the
HTTP ones (`chaosproxy_faults_injected_total`), from the same events."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from chaosproxy.tcp.registry import TcpProxies


class TcpCollector(Collector):
    """Registered in the runtime's metrics registry."""

    def __init__(self, proxies: TcpProxies) -> None:
        self.proxies = proxies

    def collect(self) -> Iterator[Metric]:
        accepted = CounterMetricFamily(
            "chaosproxy_tcp_connections",
            "Connections accepted by a TCP proxy.",
            labels=["proxy"],
        )
        open_now = GaugeMetricFamily(
            "chaosproxy_tcp_open_connections",
            "Connections a TCP proxy relays now.",
            labels=["proxy"],
        )
        refused = CounterMetricFamily(
            "chaosproxy_tcp_refused_connections",
            "Connections reset at accept by a `refused` fault.",
            labels=["proxy"],
        )
        failed = CounterMetricFamily(
            "chaosproxy_tcp_upstream_connect_errors",
            "Connections whose upstream could not be reached (the client was reset).",
            labels=["proxy"],
        )
        relayed = CounterMetricFamily(
            "chaosproxy_tcp_bytes",
            "Bytes relayed by a TCP proxy; direction upstream is client to server.",
            labels=["proxy", "direction"],
        )
        for info in self.proxies.all():
            accepted.add_metric([info.name], float(info.accepted))
            open_now.add_metric([info.name], float(info.open))
            refused.add_metric([info.name], float(info.refused))
            failed.add_metric([info.name], float(info.connect_failed))
            relayed.add_metric([info.name, "upstream"], float(info.bytes_up))
            relayed.add_metric([info.name, "downstream"], float(info.bytes_down))
        yield from (accepted, open_now, refused, failed, relayed)

    def describe(self) -> Iterator[Metric]:
        return iter(())
