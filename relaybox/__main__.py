from relaybox.cli import app

app(prog_name="relaybox")
