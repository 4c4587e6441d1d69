"""The systems the tasks compare against besides the chain (one module each).

=====================  ==========================================================================
module                 holds
=====================  ==========================================================================
:mod:`.gate`           an energy-threshold noise gate (breath and pop removal)
:mod:`.matchering`     reference mastering with matchering, given a reference master
:mod:`.neural`         an end-to-end neural amp model (a small causal LSTM) trained on the pairs
=====================  ==========================================================================
"""
