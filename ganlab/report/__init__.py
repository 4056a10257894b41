"""``ganlab report``: a comparison of runs as one self-contained HTML page, to send to a colleague.

:mod:`ganlab.report.content` gathers what the page shows from the store, on the grouping and
statistics of ``ganlab compare``; :mod:`ganlab.report.page` writes it as HTML. Nothing here knows a
concrete component: the pictures are whatever image keys the runs logged.
"""
