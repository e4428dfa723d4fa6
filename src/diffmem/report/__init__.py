"""Report generation, kept out of the drawing (``diffmem paper``).

- :mod:`diffmem.report.paper`: the paper table (``times.csv``), the answers (``answers.md``) and the
  folder they are written to with the figures (drawn by :mod:`diffmem.plots.paper_figures`);
- :mod:`diffmem.report.docs`: the committed results in ``docs/paper/`` and the generated sections of
  ``docs/paper.md`` (``diffmem paper --docs``).

This layer sits above :mod:`diffmem.plots` and :mod:`diffmem.analysis`, whose figures and numbers it
writes out.
"""
