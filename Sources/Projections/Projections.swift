/// Projectors (issue [projections]).
public enum ParleyProjections {}
