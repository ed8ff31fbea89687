"""The Flower App's components: prifft's ServerApp and ClientApp (settings from the run config)."""

from prifft.flower import client_app, server_app

server = server_app()
client = client_app()
