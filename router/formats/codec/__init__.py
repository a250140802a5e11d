"""Each format's reader and writer to and from the internal representation (`ir.py`): requests,
answers, errors and stream events. The format objects in `router/formats/` expose them; nothing
else imports a codec module directly."""
