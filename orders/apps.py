from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"

    def ready(self) -> None:
        from core.views import on_metrics_scrape
        from orders import metrics_collect

        on_metrics_scrape(metrics_collect.refresh_gauges)
