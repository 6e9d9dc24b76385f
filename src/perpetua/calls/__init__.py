"""Calls: recordings and transcripts taken in from telephony, kept encrypted for as
long as the practice chose, and never holding a payment card number.

The path of a recording or transcript, whatever door it comes in by (the Twilio
webhook, the upload API, `perpetua calls import`):

    webhook.py               verify Twilio's signature (the API checks tokens)
    fetch.py, twilio.py      Twilio recordings: queue a signed recording
                             callback, download from the practice's own account
                             (never from the callback's URL), delete at Twilio
    fetch_review.py          fetches left to the practice (given up, stopped, or
                             long pending), in words, for owners and managers
    ingest.py                honour the retention opt-out (0 days: store nothing)
    media.py                 recognise WAV, MP3 and OGG by their first bytes
    transcripts.py           parse turns; redact card numbers (perpetua.redaction)
    silence.py               silence the same spans in the recording (WAV edited
                             in place, MP3/Ogg decoded and encoded again)
    ingest.py                record the call, put the bytes in the blob store
    service.py               phi_api.open_call_media records view/playback, then
                             the blob store streams the plaintext, in memory only;
                             legal holds; settings.py holds retention choices
    retention.py             the sweep: crypto-shred what expired, keep held calls
"""
