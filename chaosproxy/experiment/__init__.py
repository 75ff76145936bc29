"""The experiment side: load with Locust, verdicts, evidence. Never imported by the proxy core.

It talks to proxies only through their admin API (`chaosproxy.admin.client`), and runs Locust as
a subprocess: Locust monkey-patches the process with gevent, which must never reach the proxy.
"""
