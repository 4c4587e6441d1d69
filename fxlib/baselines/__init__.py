"""Classic, non-learned systems the tasks compare against (one module each).

=====================  ==========================================================================
module                 holds
=====================  ==========================================================================
:mod:`.gate`           an energy-threshold noise gate (breath and pop removal)
:mod:`.matchering`     reference mastering with matchering, given a reference master
=====================  ==========================================================================
"""
